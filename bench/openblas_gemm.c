/*
 * OpenBLAS sgemm timing for bench/gemm.ts: the baseline the native kernel is held against.
 * Usage: openblas_gemm M N K LAYOUT REPS   (LAYOUT: NN, NT = A·Bᵀ, TN = Aᵀ·B; threads from OPENBLAS_NUM_THREADS)
 *        openblas_gemm info                (what OpenBLAS is running as, then exit)
 * The timing mode prints one line: the best GFLOP/s over REPS timed runs after one warm-up run, then a tab and the
 * kernel core OpenBLAS picked (openblas_get_corename), so every number carries the core that produced it.
 * The info mode prints three lines: "config <openblas_get_config()>", "core <openblas_get_corename()>",
 * "threads <openblas_get_num_threads()>".
 * bench/gemm.ts runs this with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed, so OpenBLAS's own CPU detection
 * (DYNAMIC_ARCH in Debian's build) picks the kernels; OPENBLAS_VERBOSE=2 makes it report that choice on stderr.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "info") == 0) {
    printf("config %s\n", openblas_get_config());
    printf("core %s\n", openblas_get_corename());
    printf("threads %d\n", openblas_get_num_threads());
    return 0;
  }
  if (argc != 6) {
    fprintf(stderr, "usage: %s M N K NN|NT|TN REPS\n       %s info\n", argv[0], argv[0]);
    return 2;
  }
  const int m = atoi(argv[1]), n = atoi(argv[2]), k = atoi(argv[3]), reps = atoi(argv[5]);
  const int ta = argv[4][0] == 'T', tb = argv[4][1] == 'T';
  if (m <= 0 || n <= 0 || k <= 0 || reps <= 0) {
    fprintf(stderr, "M, N, K and REPS must be positive\n");
    return 2;
  }
  float *a = malloc(sizeof(float) * (size_t)m * k);
  float *b = malloc(sizeof(float) * (size_t)k * n);
  float *c = malloc(sizeof(float) * (size_t)m * n);
  if (!a || !b || !c) return 1;
  for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
  for (size_t i = 0; i < (size_t)k * n; i++) b[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
  memset(c, 0, sizeof(float) * (size_t)m * n);
  /* Same stored layouts as the echoatt call: A is (m,k) or (k,m) when transposed, B is (k,n) or (n,k). */
  const int lda = ta ? m : k, ldb = tb ? k : n;
  double best = 1e30;
  for (int r = -1; r < reps; r++) {
    const double t0 = now_s();
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda,
                b, ldb, 0.0f, c, n);
    const double dt = now_s() - t0;
    if (r >= 0 && dt < best) best = dt;
  }
  printf("%.3f\t%s\n", 2.0 * m * n * k / best * 1e-9, openblas_get_corename());
  free(a);
  free(b);
  free(c);
  return 0;
}
