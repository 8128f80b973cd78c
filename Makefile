# Entry points for people and CI; every target is a thin wrapper over npm scripts and deploy/local/.
SHELL := /bin/bash
LOCAL := deploy/local

.PHONY: mesh-up mesh-down start test test-unit check generate lint typecheck gen-check breaking infra-up infra-down infra-check infra-status infra-clean deps

## start: run every service in one process on in-memory adapters (no infrastructure needed)
start: deps
	npm start

## test: static checks, then every suite against real etcd, MariaDB, Redis and Kafka (started here when missing)
test: deps check
	bash $(LOCAL)/with-infra.sh npx mocha

## test-unit: the suites that need no infrastructure
test-unit: deps
	npx mocha --grep @infra --invert

## check: buf lint, buf breaking against the previous commit, TypeScript type check, generated code up to date
check: lint breaking typecheck gen-check

lint: deps
	bash $(LOCAL)/proto-deps.sh
	npx buf lint

## breaking: proto/ stays wire- and code-compatible with BUF_BREAKING_AGAINST (default HEAD~1)
breaking: deps
	bash $(LOCAL)/buf-breaking.sh

typecheck: deps
	npx tsc --noEmit

## gen-check: fail when buf generate would change gen/
gen-check: deps
	bash $(LOCAL)/gen-check.sh

## generate: regenerate gen/ from proto/
generate: deps
	npm run generate

## infra-up / infra-down / infra-check: the real infrastructure on 127.0.0.1
infra-up:
	bash $(LOCAL)/infra.sh up

infra-down:
	bash $(LOCAL)/infra.sh down

## mesh-up: one process per service on the local infrastructure (after infra-up); mesh-down stops them
mesh-up: deps
	bash $(LOCAL)/mesh.sh up

mesh-down:
	bash $(LOCAL)/mesh.sh down

infra-check: deps
	source $(LOCAL)/env.sh && node --import tsx $(LOCAL)/infra-check.ts

infra-status:
	bash $(LOCAL)/infra.sh status

## infra-clean: stop what infra-up started and delete local etcd and Kafka data
infra-clean: infra-down
	rm -rf .run/etcd .run/kafka/data

deps:
	@node $(LOCAL)/ensure-deps.mjs
