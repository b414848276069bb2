"""Where the methods and metrics meet the rest of Keras and TensorFlow: Keras
callbacks during ``fit`` (``callbacks``), SavedModels for TF Serving
(``serving``), ``tf.distribute`` (``distribute``), adaptive noising
(``adaptive``: σ chosen per image by the metrics) and convergence curves
(``convergence``). Imports the layers below it, never the command line or Apache
Beam."""
