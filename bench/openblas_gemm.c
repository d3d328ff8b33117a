/*
 * OpenBLAS sgemm timing for bench/gemm.ts: the baseline the native kernel is held against.
 * Usage: openblas_gemm M N K LAYOUT REPS   (LAYOUT: NN, NT = A·Bᵀ, TN = Aᵀ·B; threads from OPENBLAS_NUM_THREADS)
 * Prints one line: the best GFLOP/s over REPS timed runs after one warm-up run.
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
  if (argc != 6) {
    fprintf(stderr, "usage: %s M N K NN|NT|TN REPS\n", argv[0]);
    return 2;
  }
  const int m = atoi(argv[1]), n = atoi(argv[2]), k = atoi(argv[3]), reps = atoi(argv[5]);
  const int ta = argv[4][0] == 'T', tb = argv[4][1] == 'T';
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
  printf("%.3f\n", 2.0 * m * n * k / best * 1e-9);
  free(a);
  free(b);
  free(c);
  return 0;
}
