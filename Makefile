# gradsink: `make` builds, `make test` checks, `make clean` cleans.
CC ?= gcc
CFLAGS ?= -O3 -march=native
# libm may set errno (sqrt of a negative): nothing here reads it, and the check keeps loops
# with sqrt (AdamW) from vectorizing
CFLAGS += -fno-math-errno
WARN = -Wall -Wextra
LDLIBS = -lm
# OpenMP when the compiler has it (as llm.c does); NO_OMP=1 builds without
ifeq ($(NO_OMP),)
  OMP := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo -fopenmp)
endif
# without OpenMP the pragmas are simply ignored; say so instead of warning about each
ifeq ($(OMP),)
  WARN += -Wno-unknown-pragmas
endif
# a portable fallback when -march=native is not understood
ifeq ($(shell echo 'int main(void){return 0;}' | $(CC) -march=native -x c - -o /dev/null 2>/dev/null && echo ok),)
  CFLAGS := $(filter-out -march=native,$(CFLAGS))
endif
# AVX-512 machines: let the vectorizer use the full 512-bit registers (gcc and clang default to
# 256 on them); ignored where the compiler does not know the option
ifneq ($(filter -march=native,$(CFLAGS)),)
  CFLAGS += $(shell echo 'int main(void){return 0;}' | $(CC) -mprefer-vector-width=512 -x c - -o /dev/null 2>/dev/null && echo -mprefer-vector-width=512)
endif

.PHONY: all test test-c clean bench
all: gradsink

gradsink: gradsink.c
	$(CC) $(CFLAGS) $(WARN) $(OMP) -o $@ $< $(LDLIBS)

# the tests: a double-precision build (tight finite differences) and the float build
test_gradsink_double: test_gradsink.c gradsink.c
	$(CC) -O2 $(WARN) $(OMP) -DGRADSINK_DOUBLE -o $@ $< $(LDLIBS)
test_gradsink_float: test_gradsink.c gradsink.c
	$(CC) $(CFLAGS) $(WARN) $(OMP) -o $@ $< $(LDLIBS)

# every suite prints its own "N passed, M failed"; the last line adds them up
SHELL := /bin/bash
test: gradsink test_gradsink_double test_gradsink_float
	@rc=0; log=$$(mktemp); \
	./test_gradsink_double | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	./test_gradsink_float | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	python3 test_tokenizer.py 2>&1 | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	awk '/^[0-9]+ passed, [0-9]+ failed$$/ {p += $$1; f += $$3} END {printf "%d passed, %d failed\n", p, f + (p == 0)}' $$log; \
	rm -f $$log; exit $$rc

# the speed benchmark: FMA peak, matmuls alone, full training step at two sizes (see gradsink.c)
bench: gradsink
	./gradsink --bench 20

clean:
	rm -f gradsink test_gradsink_double test_gradsink_float
