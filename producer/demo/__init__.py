"""``tileclass demo``'s library: generated imagery (``synthetic``), the region it classifies (``region``) and the
steps it runs as child processes (``steps``)."""
