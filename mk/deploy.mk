## Deploying: the OCI image and the Kubernetes examples ------------------------------------------
# `make oci` writes the built filter as an OCI image layout in target/oci/ (no container engine:
# deploy/oci_image.py) and prints the manifest digest.
# `make test-deploy` (part of `make test`) reads the image back with skopeo and umoci (Debian).
# docs/deploying.md: pushing the image and applying the manifests.

ifndef DEPLOY_MK_INCLUDED
DEPLOY_MK_INCLUDED := 1
# Included near the top of the Makefile: keep `make` alone meaning what the Makefile says.
deploy_mk_default_goal := $(.DEFAULT_GOAL)

OCI_DIR    := target/oci
OCI_TAG    := tokengate

.PHONY: oci oci-tools test-deploy

oci-tools:
	@command -v skopeo >/dev/null && command -v umoci >/dev/null || \
	  { $(APT_GET) update && $(APT_GET) install --no-install-recommends skopeo umoci; }

oci: tools build
	@digest=$$($(PYTHON) deploy/oci_image.py $(FILTER_WASM) $(OCI_DIR) --tag $(OCI_TAG)) && \
	  echo "oci: $(OCI_DIR) (oci:$(OCI_DIR):$(OCI_TAG))" && \
	  echo "$$digest"

test-deploy: oci oci-tools
	$(VENV)/bin/python -m pytest tests/deploy -q

test: test-deploy

.DEFAULT_GOAL := $(deploy_mk_default_goal)
endif
