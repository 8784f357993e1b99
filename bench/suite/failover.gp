# Fail-over outage of every run, per interval (x) and system (colour), with the
# medians as large marks. Data: failover_outage.dat (blocks per system, "x outage_ms"),
# failover_medians.dat. Variables: outfile, xtics ("(\"1 s\" 0, ...)"), xmax, and data /
# medians for other file names (the IPv6 benchmark's failover6_*.dat).
if (!exists("outfile")) outfile = 'failover_outage.png'
if (!exists("data")) data = 'failover_outage.dat'
if (!exists("medians")) medians = 'failover_medians.dat'
set terminal pngcairo size 900,550 font ",10" noenhanced
set output outfile
set title "client-observed outage after a host crash (each run; medians: large marks)"
set logscale y
set ylabel "outage ms"
set xlabel "heartbeat / advert interval (left: baton, right: keepalived)"
eval('set xtics '.xtics)
set xrange [-0.5:xmax]
set grid ytics
set key top right
plot data index 0 using 1:2 with points pt 7 ps 0.8 lc rgb "#1f77b4" title "baton", \
     '' index 1 using 1:2 with points pt 5 ps 0.8 lc rgb "#d62728" title "keepalived", \
     medians using 1:2 with points pt 3 ps 3 lw 2 lc rgb "black" title "median"
