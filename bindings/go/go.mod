module github.com/noxy-network/libnoxy/bindings/go

go 1.24
