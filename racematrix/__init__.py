"""racematrix: a reproduction matrix for the CUDA simulator's cuda-module race
(the logic behind noxfile.py; its layers: ``[tool.importlinter]``)."""
