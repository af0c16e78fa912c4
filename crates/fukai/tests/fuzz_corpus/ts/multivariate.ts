@problemName Vowels
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true 1 2 3
@data
1.5,2.5,?:0.1,0.2,0.3:1
1,2:3,4:2
-1e-3,NaN,7,8,9:1,2,3,4,5:3
