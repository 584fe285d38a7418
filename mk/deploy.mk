## Deploying: the OCI image and the Kubernetes examples ------------------------------------------
# `make oci` writes the built filter as an OCI image layout in target/oci/ (no container engine:
# deploy/oci_image.py), prints the manifest digest, and renders the Istio and Envoy Gateway
# examples (deploy/istio/, deploy/envoy-gateway/) into target/deploy/ with that digest, the
# image name OCI_IMAGE and the demo plugin configuration of envoy/envoy.yaml.
# `make test-deploy` (part of `make test`) reads the image back with skopeo and umoci (Debian)
# and validates every rendered manifest against the CRD schemas in deploy/schemas/.
# docs/deploying.md: pushing the image and applying the manifests.

OCI_DIR    := target/oci
OCI_TAG    := tokengate
# Where you push the image; only the rendered manifests use it.
OCI_IMAGE  ?= registry.example.com/tokengate
DEPLOY_OUT := target/deploy

.PHONY: oci oci-tools test-deploy

oci-tools: ## skopeo and umoci (Debian), which read the image back
	@command -v skopeo >/dev/null && command -v umoci >/dev/null || \
	  { $(APT_GET) update && $(APT_GET) install --no-install-recommends skopeo umoci; }

oci: tools build ## the filter as an OCI image in target/oci/, its digest, and the Kubernetes examples rendered
	@digest=$$($(PYTHON) deploy/oci_image.py $(FILTER_WASM) $(OCI_DIR) --tag $(OCI_TAG)) && \
	  rm -rf $(DEPLOY_OUT) && \
	  $(VENV)/bin/python deploy/render_manifests.py --image $(OCI_IMAGE) --sha256 $$digest $(DEPLOY_OUT) >/dev/null && \
	  echo "oci: $(OCI_DIR) (oci:$(OCI_DIR):$(OCI_TAG)), manifests in $(DEPLOY_OUT)/" && \
	  echo "$$digest"

test-deploy: oci oci-tools ## tests/deploy: the image read back, the manifests against the CRD schemas, in the real Envoy
	$(VENV)/bin/python -m pytest tests/deploy -q
