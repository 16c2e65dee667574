"""The colours of rfkit's figures, by role (one palette for every figure and its footer)."""

#: Okabe & Ito's colour-blind-safe palette, by role.
COLORS = {
    "rf": "#56B4E9",  # sky blue: analytic RF box and centre (over the heat map)
    "gauss": "#FFFFFF",  # Gaussian ellipses over the heat map (dark outline)
    "frame": "#8C8C8C",  # the input frame
    "outside": "#E6E6E6",  # outside the input
    "rf_max": "#0072B2",  # blue: analytic RF, max over paths
    "rf_min": "#009E73",  # bluish green: analytic RF, min over paths
    "erf": "#E69F00",  # orange: measured ERF
    "marker": "#CC79A7",  # reddish purple: measured layers
    "input": "#555555",  # input size line
    "note": "#333333",  # footer text
    "warning": "#D55E00",  # vermillion: random weights, degenerate maps
    "outline": "#000000",  # stroke around artists drawn over the heat map
}
