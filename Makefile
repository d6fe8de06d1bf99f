.PHONY: bench soak icount

# Benchmark: stand-in upstream, paired rounds, floor proxy, Crossroads scenarios, peers (~11 min).
# Report: bench/results/latest/report.md. See bench/README.md.
bench:
	bash bench/run.sh

# 10-minute fixed-rate soak against Crossroads (SOAK_SECONDS=60 for a short run).
soak:
	bash bench/run.sh --soak

# Instructions per request under valgrind's callgrind: floor vs Crossroads, noise-free (~6 min).
icount:
	bash bench/run.sh --icount
