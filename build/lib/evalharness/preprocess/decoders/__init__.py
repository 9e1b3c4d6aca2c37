"""One module per decoder library, each registering itself in DECODERS (found by the
registry: adding a decoder is a module here, or an `evalharness.decoders` entry point).

Modules of optional libraries import them inside the decode function, so a missing library
breaks only the configs that use it (planning says which extra to install).
"""
