// The shared library libdlprep is the module libraries linked whole; this file only anchors it.
