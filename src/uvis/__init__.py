"""uvis: unsupervised video instance segmentation.

Raw videos in; every object segmented, tracked and named out, with no human annotation.
"""

__version__ = "0.1.0"
