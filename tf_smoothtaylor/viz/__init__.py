"""Maps made visible: coloured heatmaps and overlays as arrays and PNGs
(``pictures``, ``tst.visualize``), matplotlib figures of maps, curves and runs
(``plot``, ``tst.plot``). Reads run directories through ``data``; never imports
the command line."""
