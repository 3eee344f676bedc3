"""The web console (``pgmaint web``): server-rendered pages over the kit's ``maint.*`` functions."""
