"""Models: the text-enhanced classifier module and the image and text encoders it is built from."""
