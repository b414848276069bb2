"""The image files the package reads (a module without TensorFlow: the command
line's input listing and the Beam driver use it too)."""

#: The extensions of the image files a glob keeps (JPEG, PNG, GIF, BMP).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
