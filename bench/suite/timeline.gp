# A client's requests around a crash (t = 0): one row per answering node (or
# protocol), failures on the bottom row. Data: blocks "t_ms row", the last one the
# failures. Variables: datafile, outfile, ytics ("(\"failed\" 0, \"h1\" 1, ...)"),
# ymax, title, nblocks.
set terminal pngcairo size 1100,400 font ",10" noenhanced
set output outfile
set title title
set xlabel "ms since the crash"
eval('set ytics '.ytics)
set yrange [-0.7:ymax]
set grid xtics
set key outside right
nb = int(nblocks)
plot for [i=0:nb-2] datafile index i using 1:2 with points pt 7 ps 0.5 title columnheader(1), \
     datafile index (nb-1) using 1:2 with points pt 2 ps 0.8 lc rgb "red" title "failed"
