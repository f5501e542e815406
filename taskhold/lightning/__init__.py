"""Lightning backends behind one hold-invoice Protocol (``base``): ``sim`` and ``lnd``."""

from .base import LightningBackend

__all__ = ["LightningBackend"]
