# Throughput versus clients, one panel per operation, one line per system.
# Data: throughput_{put,get,incr}.dat (bench/suite/analyze.py): blocks separated
# by two blank lines, each starting with the series name, then "clients ops/s".
# Usage: gnuplot -e "outfile='x.png'" throughput.gp   (run in the results folder)
if (!exists("outfile")) outfile = 'throughput_vs_clients.png'
set terminal pngcairo size 1500,500 font ",10" noenhanced
set output outfile
set multiplot layout 1,3 title "requests/s vs clients (median; log scales)"
set logscale xy
set xlabel "clients"
set ylabel "ops/s"
set xtics (1, 4, 16, 64)
set grid
set key bottom right font ",8"
do for [op in "put get incr"] {
  f = 'throughput_'.op.'.dat'
  set title (op eq 'put' ? 'PUT (Redis SET; raw engines: synced writes)' : (op eq 'get' ? 'GET' : 'INCR (raw engines: synced writes)'))
  stats f nooutput
  n = STATS_blocks
  plot for [i=0:n-1] f index i using 1:2 with linespoints pointsize 1 title columnheader(1)
}
unset multiplot
