"""Configuration files shared by the hub and the client: agency profiles (``profile.toml`` and
the key and certificate files beside it) and the TOML reading both configurations use.

Not part of the core: these modules read files. Only entry points and the hub's ``init`` read
them; the library takes the objects they build.
"""
