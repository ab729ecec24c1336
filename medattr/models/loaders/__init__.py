"""Model loaders, one module per format (registered with
:func:`medattr.models.register_loader`)."""

__all__: list[str] = []
