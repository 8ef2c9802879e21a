"""REST: the labelers' queue and the labels' export."""
