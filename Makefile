# uws_hub — the two commands (see README.md):
#   make run    set up what is missing, run the hub on http://127.0.0.1:8000 (SQLite, local spawner, dev login)
#   make test   set up what is missing, start the services the tests need, run the whole suite
#               (tests/unit, tests/e2e, then tests/contract; `make test PYTEST_ARGS=tests/e2e/test_jobs.py`)
#   make unit   only the fast unit tests (tests/unit): seconds, any user, no services
#   make labext rebuild the JupyterLab extension (committed prebuilt; needs Node 20 and npm)
.PHONY: run test unit lint format bench clean labext

run:
	@scripts/run.sh

test:
	@scripts/test.sh $(PYTEST_ARGS)

unit:
	@scripts/test.sh --unit $(PYTEST_ARGS)

lint:
	@"$$(scripts/bootstrap.sh test)/bin/ruff" check uws_hub tests bench jupyterhub_config.py

format:
	@"$$(scripts/bootstrap.sh test)/bin/ruff" format uws_hub tests bench jupyterhub_config.py

# make bench [BENCH=bench_load.py] [BENCH_ARGS="--quick"]   (default: bench_workspaces.py)
BENCH ?= bench_workspaces.py
bench:
	@PATH="$$(scripts/bootstrap.sh test)/bin:$$PATH" python bench/$(BENCH) $(BENCH_ARGS)

# Rebuild the JupyterLab extension (labext/uws-hub-session) into uws_hub/labextension/ with
# Node 20 and npm (offline from the npm registry's packages): the built bundle is committed, so
# neither `make run` nor `make test` builds it.
labext:
	@cd labext/uws-hub-session && npm ci --no-audit --no-fund && npm run build

clean:
	rm -rf uws-data .pytest_cache build *.egg-info
