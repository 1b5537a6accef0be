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
# without OpenMP its pragmas are simply ignored, by design
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

.PHONY: all test test-c test-asan fuzz clean bench
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
test: gradsink test_gradsink_double test_gradsink_float dev/bench
	@rc=0; log=$$(mktemp); \
	./test_gradsink_double | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	./test_gradsink_float | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	./test_gradsink_float --cli ./gradsink | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	python3 test_tokenizer.py 2>&1 | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	python3 dev/test_hf.py 2>&1 | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	python3 dev/test_twin.py 2>&1 | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	python3 dev/test_compare.py 2>&1 | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	python3 dev/test_train.py 2>&1 | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	out=$$(./dev/bench 2 -L 1 -C 32 -H 2 -F 64 -V 64 -t 16 -b 2 2>&1); \
	if grep -q 'FMA peak (all threads, measured)' <<<"$$out" && grep -q 'register tiles alone' <<<"$$out" && \
	   grep -q 'matmuls alone' <<<"$$out" && grep -q '4x       L1 C64' <<<"$$out" && grep -q 'headline: default step' <<<"$$out"; \
	then msg="OK   dev/bench 2 on a small model prints the peak, the tiles, both configurations and the headline"; n=1; \
	else msg="FAIL dev/bench 2 on a small model: $$out"; n=0; rc=1; fi; \
	printf '%s\n%d passed, %d failed\n' "$$msg" $$n $$((1 - n)) | tee -a $$log; \
	$(MAKE) -s --no-print-directory exercises 2>&1 | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	python3 dev/readme_map.py | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	python3 dev/readme_map.py --self-test | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	awk '/^[0-9]+ passed, [0-9]+ failed$$/ {p += $$1; f += $$3} END {printf "%d passed, %d failed\n", p, f + (p == 0)}' $$log; \
	rm -f $$log; exit $$rc

# the same tests under AddressSanitizer + UndefinedBehaviorSanitizer (any report fails the run):
# the double build of the unit tests (one thread: on a busy machine OpenMP's spinning threads
# make it minutes slower), and the command-line tests against a sanitized binary (two threads)
SAN = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
gradsink_asan: gradsink.c
	$(CC) $(SAN) $(WARN) $(OMP) -o $@ $< $(LDLIBS)
test_gradsink_asan: test_gradsink.c gradsink.c
	$(CC) $(SAN) $(WARN) $(OMP) -DGRADSINK_DOUBLE -o $@ $< $(LDLIBS)
test-asan: gradsink_asan test_gradsink_asan
	@rc=0; log=$$(mktemp); export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1; \
	OMP_NUM_THREADS=1 ./test_gradsink_asan | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	./test_gradsink_asan --cli ./gradsink_asan | tee -a $$log; [ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	awk '/^[0-9]+ passed, [0-9]+ failed$$/ {p += $$1; f += $$3} END {printf "%d passed, %d failed\n", p, f + (p == 0)}' $$log; \
	rm -f $$log; exit $$rc

# fuzz harnesses for the three file readers (clang's libFuzzer; see dev/fuzz/README.md; not run by CI)
FUZZ = dev/fuzz/fuzz_tokens dev/fuzz/fuzz_tokenizer dev/fuzz/fuzz_checkpoint
fuzz: $(FUZZ)
dev/fuzz/fuzz_%: dev/fuzz/fuzz_%.c gradsink.c
	clang -g -O1 $(WARN) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -o $@ $< $(LDLIBS)

# the speed benchmark: FMA peak, matmuls alone, full training step at two sizes (dev/bench.c,
# which includes gradsink.c; dev/bench STEPS [shape flags] runs it on another shape)
dev/bench: dev/bench.c gradsink.c
	$(CC) $(CFLAGS) $(WARN) $(OMP) -o $@ $< $(LDLIBS)
bench: dev/bench
	./dev/bench 20

# the release build's compiler flags, for tools that build gradsink.c their own way (dev/ab_step.sh)
.PHONY: print-flags
print-flags:
	@echo $(CFLAGS) $(OMP)

# classroom exercises (dev/exercises/README.md): make exercise-N [ANSWER=...] [KEEP=DIR];
# make exercises runs them all in their solution form (make test does too)
.PHONY: exercises
exercises: gradsink test_gradsink_double
	@python3 dev/exercises/run.py
exercise-%: gradsink test_gradsink_double
	@python3 dev/exercises/run.py $* $(if $(ANSWER),--answer '$(ANSWER)') $(if $(KEEP),--keep '$(KEEP)')

clean:
	rm -f gradsink dev/bench test_gradsink_double test_gradsink_float gradsink_asan test_gradsink_asan $(FUZZ)
