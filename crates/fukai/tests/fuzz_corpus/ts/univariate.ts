# A tiny UEA-style file.
@problemName Tiny
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true up down
@data
1.0,2.0,3.0,4.0:up
4.0,3.0,2.0,1.0:down
0.5,1.5,2.5,3.5:up
