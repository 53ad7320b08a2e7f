# vae-cluster: the two commands of the quick start, and their parts.
#   make train   install missing apt packages, build in release, train on the bundled MNIST with
#                a coordinator and WORKERS (2) local worker processes; prints the test -ELBO and NLL
#   make test    install missing apt packages and the Python packages the tests use (prometheus-client,
#                numpy, safetensors, torch CPU, tensorboard, kubernetes-validate:
#                scripts/install-deps.sh --test), build and run the tests
.PHONY: deps test-deps build train train-single test bench clean

WORKERS ?= 2
ARGS ?= --epochs 10 --batch 128 --hidden 400 --latent 20 --lr 1e-3 --seed 1 --nll-k 5000 --nll-limit 1000 --out runs/mnist

deps:
	scripts/install-deps.sh

test-deps:
	scripts/install-deps.sh --test

build: deps
	swift build -c release

train: build
	.build/release/vae-coordinator start --local-workers $(WORKERS) --bind 'tcp://127.0.0.1:*' --data Data/mnist $(ARGS)

train-single: build
	.build/release/vae train --data Data/mnist --threads 1 $(ARGS)

# --explicit-target-dependency-import-check error: a target that imports a module its Package.swift
# entry does not name fails the build (docs/ARCHITECTURE.md).
test: test-deps
	swift build --build-tests --explicit-target-dependency-import-check error
	swift test --skip-build

bench: build
	Benchmarks/compare.sh
	Benchmarks/compare-distributed.sh

clean:
	rm -rf .build runs
