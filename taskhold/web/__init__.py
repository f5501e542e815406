"""The pages people use in a browser: the task board and the audit explorer.

The server sends only files: an HTML shell per page, a stylesheet and the JavaScript bundled from
``web/`` (``scripts/build-web``). Everything a page shows it reads itself, from the public API and
from the relays, and every signature is made in the browser by the user's own NIP-07 signer, so
no key ever reaches taskhold.
"""

from .pages import BUNDLE_DIR, router

__all__ = ["BUNDLE_DIR", "router"]
