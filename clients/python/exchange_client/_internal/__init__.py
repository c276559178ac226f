"""Private implementation of :mod:`exchange_client`; import from the package, not from here."""
