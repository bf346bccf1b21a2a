"""``python -m monitor.simulator``: serve the simulated TMAPI until Ctrl-C."""

from monitor.simulator.server import main

main()
