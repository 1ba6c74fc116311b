
 

ok


badÿþkey
