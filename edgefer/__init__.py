"""edgefer: facial-expression classification on the edge.

Light by design: importing it loads numpy and Pillow only; a TFLite runtime is imported when a
:class:`~edgefer.classifier.Classifier` is built, TensorFlow only by ``edgefer convert``.
"""

__version__ = "0.1.0"
