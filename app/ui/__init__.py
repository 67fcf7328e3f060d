"""The web pages served under /ui/: the embeddable customer card, its demo and iframe page,
and the registry console; plain HTML, CSS and ES modules shipped as package data (no build
step, no external assets). app/api/routes/ui.py serves them."""
