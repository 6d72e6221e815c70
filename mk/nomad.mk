# Nomad v1.11.3, built from the Go module proxy by the tools module in
# deploy/nomad (see its go.mod for the pins). Included by the Makefile.
#
#   make nomad       build $(BIN)/nomad if missing or if deploy/nomad changed
#   make tools       includes it (prerequisite added below)
#
# The tests find the binary at $(BIN)/nomad, or wherever SPICE_NOMAD_BIN says.
# Build time on two shared cores: about 8.5 minutes from nothing (it downloads
# ~2.2 GB of modules into the module cache and fills ~1.6 GB of build cache,
# peaking at ~3.3 GB of RAM), about 7 minutes with the modules already
# downloaded, 15 seconds to relink with a warm build cache. The binary is
# about 140 MB. deploy/nomad/build.sh installs gcc when missing (Nomad's exec
# driver needs cgo).

GO ?= go
BIN ?= $(CURDIR)/bin
NOMAD_MOD := $(CURDIR)/deploy/nomad

.PHONY: nomad
nomad: $(BIN)/nomad

tools: $(BIN)/nomad

$(BIN)/nomad: $(NOMAD_MOD)/go.mod $(NOMAD_MOD)/go.sum $(NOMAD_MOD)/build.sh
	GO=$(GO) bash $(NOMAD_MOD)/build.sh $@
