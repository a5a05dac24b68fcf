// placeholder: FERPlot
