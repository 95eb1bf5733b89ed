"""gsv_edu: the SoVITS module (stage s2) of GPT-SoVITS, written to be read, checked and trained.

The library mirrors the official implementation of RVC-Boss/GPT-SoVITS (module names, state-dict
keys, numerics) so that official v1/v2 SoVITS weights load into it unchanged.
"""

__version__ = "0.1.0"
