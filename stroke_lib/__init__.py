"""stroke_lib: the tested library under the stroke-imaging book.

Subpackages and modules:

- ``stroke_lib.data``: the embedded synthetic cohort, DICOM and BIDS NIfTI loaders,
  the ``Cohort`` table and the dataset manifests.
- ``stroke_lib.preprocess``: windowing, slice selection, resampling, masking.
- ``stroke_lib.book``: papermill execution of chapters and the book build.
"""

__version__ = "0.1.0"
