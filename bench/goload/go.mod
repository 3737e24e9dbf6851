module chorus.local/bench/goload

go 1.26
