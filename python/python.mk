# SPDX-License-Identifier: MIT
# python/python.mk - the CPython extension module; included by the Makefile.
#
#   make python          python/streambuffer/_streambuffer$(EXT_SUFFIX), the
#                        package's extension, in place, so that
#                        PYTHONPATH=python $(PYTHON) -c 'import streambuffer'
#   make python-test     pytest over python/tests (TIMEOUT seconds at most)
#   make bench-python    python/bench.py: random 4 KiB reads against BytesIO
#
# The module is built for $(PYTHON), whichever interpreter runs the tests:
# its headers and its extension suffix come from that interpreter.  Asking
# it costs two interpreter starts, so only the goals that need them do.

PY_GOALS := python python-test bench-python
.PHONY: $(PY_GOALS)

ifneq ($(filter $(PY_GOALS),$(MAKECMDGOALS)),)
PY_INCLUDE := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)
PY_SUFFIX  := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX") or "")' 2>/dev/null)
endif
PY_EXT := python/streambuffer/_streambuffer$(PY_SUFFIX)

# CPython's headers come in as system headers: the strict warnings are for
# this module's code.  The archive's sb_* symbols stay inside the module
# (--exclude-libs): it exports PyInit__streambuffer and nothing else.
PY_WARN := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wmissing-prototypes \
           -Wstrict-prototypes
PY_CFLAGS := -isystem $(PY_INCLUDE) -Iinclude $(PY_WARN) $(CFLAGS) $(SANFLAGS) \
             -fPIC -fvisibility=hidden -fno-strict-aliasing

python: $(PY_EXT)

PY_SRC := $(wildcard python/src/*.c)

# With libcurl's development files, from_url comes in: libstreambuffer_http
# linked in like the core (SB_PY_HTTP); without them it raises ENOSYS.
PY_HTTP_A := $(if $(CURL_LIBS),$(HTTP_STATIC))
PY_HTTP_F := $(if $(CURL_LIBS),-DSB_PY_HTTP $(CURL_CFLAGS))

$(PY_EXT): $(PY_SRC) python/src/common.h include/streambuffer.h include/streambuffer_http.h \
		$(STATIC) $(PY_HTTP_A) python/python.mk
	@test -n "$(PY_SUFFIX)" && test -f "$(PY_INCLUDE)/Python.h" || \
		{ echo "python: $(PYTHON) has no Python.h (on Debian: apt-get install python3-dev," \
			"or PYTHON=/usr/bin/python3)" >&2; exit 1; }
	$(CC) $(PY_CFLAGS) $(PY_HTTP_F) $(LDFLAGS) -shared -o $@ $(PY_SRC) $(PY_HTTP_A) $(STATIC) \
		-Wl,--exclude-libs,ALL $(CURL_LIBS) -lpthread

# Counts go to $(SB_TALLY) as "python P F S", as the other parts of
# `make test` do; a crash or a timeout counts as a failure.
python-test: $(PY_EXT)
	@TIMEOUT=$(TIMEOUT) sh python/run-tests.sh $(PYTHON)

bench-python: $(PY_EXT)
	PYTHONPATH=python $(PYTHON) python/bench.py $(BENCH_ARGS)

# `make clean` takes the module and what pip's in-tree build leaves too.
clean: python-clean
python-clean:
	rm -rf python/streambuffer/*.so python/streambuffer.*.so python/build python/dist python/*.egg-info \
		python/streambuffer/__pycache__ python/tests/__pycache__
.PHONY: python-clean
