/*
 * llama_c — a plain single-threaded C forward pass of a Llama model in the llama2.c checkpoint format, used by
 * `npm run bench:vs-c` as the baseline for echoatt's greedy decode speed. Float loops only: no BLAS, no threads,
 * no SIMD intrinsics (the compiler may vectorise: the bench builds it with gcc -Ofast -march=native).
 *
 * Usage: llama_c <checkpoint.bin> <steps> <prompt ids, comma-separated>
 *   Feeds the prompt one token per position, then picks the argmax token (ties: lowest index) at each position until
 *   `steps` positions have run; no stop token. stdout: the new token ids, comma-separated, on one line. stderr:
 *   "decode <n> tokens <ms> ms <tok/s> tok/s" — n = forward passes after the prompt, timed from the end of the
 *   prompt's last forward to the last token (CLOCK_MONOTONIC), as echoatt's generate() counts them.
 *
 * Checkpoint (llama2.c version 0, fp32): 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size
 * (negative: separate classifier), seq_len), then f32 token_embedding (V,dim), rms_att (L,dim), wq (L,dim,dim),
 * wk (L,kv,dim), wv (L,kv,dim), wo (L,dim,dim), rms_ffn (L,dim), w1 (L,hidden,dim), w2 (L,dim,hidden),
 * w3 (L,hidden,dim), rms_final (dim), two legacy RoPE tables (seq_len*head/2 each, ignored), wcls (V,dim) if
 * vocab_size < 0. kv = n_kv_heads*head. RoPE rotates adjacent pairs (x[2i], x[2i+1]), theta 10000; RMSNorm eps 1e-5.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  int dim, hidden, layers, heads, kv_heads, vocab, seq;
  int head, kv_dim;
  int shared_cls;
} Dims;

typedef struct {
  float *emb, *rms_att, *wq, *wk, *wv, *wo, *rms_ffn, *w1, *w2, *w3, *rms_final, *cls;
} Weights;

typedef struct {
  float *x, *xn, *q, *att_out, *tmp, *gate, *up, *scores, *logits;
  float *kcache, *vcache; /* (layers, seq, kv_dim) */
  float *rope_cos, *rope_sin; /* (seq, head/2) */
} State;

static void die(const char *msg) {
  fprintf(stderr, "llama_c: %s\n", msg);
  exit(1);
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n, size);
  if (!p) die("out of memory");
  return p;
}

/* Reads the whole file; returns the float data after the header and fills in the dims. */
static float *load(const char *path, Dims *d, Weights *w) {
  FILE *f = fopen(path, "rb");
  if (!f) die("cannot open checkpoint");
  int h[7];
  if (fread(h, sizeof(int), 7, f) != 7) die("short header");
  d->dim = h[0], d->hidden = h[1], d->layers = h[2], d->heads = h[3], d->kv_heads = h[4];
  d->shared_cls = h[5] > 0;
  d->vocab = abs(h[5]), d->seq = h[6];
  if (d->dim <= 0 || d->heads <= 0 || d->kv_heads <= 0 || d->dim % d->heads || d->heads % d->kv_heads) die("bad header");
  d->head = d->dim / d->heads;
  d->kv_dim = d->kv_heads * d->head;

  size_t D = d->dim, H = d->hidden, L = d->layers, V = d->vocab, KV = d->kv_dim;
  size_t n = V * D + L * D + L * D * D + 2 * L * KV * D + L * D * D + L * D + 3 * L * H * D + D
             + (size_t)d->seq * d->head + (d->shared_cls ? 0 : V * D);
  float *data = malloc(n * sizeof(float));
  if (!data) die("out of memory");
  if (fread(data, sizeof(float), n, f) != n) die("checkpoint shorter than its header implies");
  if (fgetc(f) != EOF) die("checkpoint longer than its header implies");
  fclose(f);

  float *p = data;
  w->emb = p, p += V * D;
  w->rms_att = p, p += L * D;
  w->wq = p, p += L * D * D;
  w->wk = p, p += L * KV * D;
  w->wv = p, p += L * KV * D;
  w->wo = p, p += L * D * D;
  w->rms_ffn = p, p += L * D;
  w->w1 = p, p += L * H * D;
  w->w2 = p, p += L * D * H;
  w->w3 = p, p += L * H * D;
  w->rms_final = p, p += D;
  p += (size_t)d->seq * d->head; /* freq_cis_real + freq_cis_imag, seq*head/2 each */
  w->cls = d->shared_cls ? w->emb : p;
  return data;
}

static void init_state(const Dims *d, State *s) {
  size_t half = d->head / 2;
  s->x = xcalloc(d->dim, sizeof(float));
  s->xn = xcalloc(d->dim, sizeof(float));
  s->q = xcalloc(d->dim, sizeof(float));
  s->att_out = xcalloc(d->dim, sizeof(float));
  s->tmp = xcalloc(d->dim, sizeof(float));
  s->gate = xcalloc(d->hidden, sizeof(float));
  s->up = xcalloc(d->hidden, sizeof(float));
  s->scores = xcalloc(d->seq, sizeof(float));
  s->logits = xcalloc(d->vocab, sizeof(float));
  s->kcache = xcalloc((size_t)d->layers * d->seq * d->kv_dim, sizeof(float));
  s->vcache = xcalloc((size_t)d->layers * d->seq * d->kv_dim, sizeof(float));
  s->rope_cos = xcalloc(d->seq * half, sizeof(float));
  s->rope_sin = xcalloc(d->seq * half, sizeof(float));
  /* Frequencies and angles rounded to float, as llama2.c's cosf(pos * freq) forms them. */
  for (size_t i = 0; i < half; i++) {
    float inv = 1.0f / (float)pow(10000.0, (double)((float)(2 * i) / (float)d->head));
    for (int pos = 0; pos < d->seq; pos++) {
      float angle = (float)pos * inv;
      s->rope_cos[pos * half + i] = (float)cos((double)angle);
      s->rope_sin[pos * half + i] = (float)sin((double)angle);
    }
  }
}

/* out = weight * x / rms(x), eps 1e-5 */
static void rmsnorm(float *out, const float *x, const float *weight, int n) {
  float ss = 0.0f;
  for (int i = 0; i < n; i++) ss += x[i] * x[i];
  float scale = 1.0f / sqrtf(ss / n + 1e-5f);
  for (int i = 0; i < n; i++) out[i] = weight[i] * (scale * x[i]);
}

/* out (rows) = W (rows, cols) · x (cols) */
static void matvec(float *out, const float *W, const float *x, int rows, int cols) {
  for (int r = 0; r < rows; r++) {
    const float *row = W + (size_t)r * cols;
    float acc = 0.0f;
    for (int c = 0; c < cols; c++) acc += row[c] * x[c];
    out[r] = acc;
  }
}

/* Rotate adjacent pairs of each head of vec (n_heads heads) by the angles of position pos. */
static void rope(float *vec, int n_heads, int head, const float *cs, const float *sn) {
  int half = head / 2;
  for (int h = 0; h < n_heads; h++) {
    float *v = vec + h * head;
    for (int i = 0; i < half; i++) {
      float a = v[2 * i], b = v[2 * i + 1];
      v[2 * i] = a * cs[i] - b * sn[i];
      v[2 * i + 1] = a * sn[i] + b * cs[i];
    }
  }
}

/* One position: token at pos (the cache holds positions 0..pos-1); leaves the logits in s->logits. */
static void forward(const Dims *d, const Weights *w, State *s, int token, int pos) {
  const int D = d->dim, H = d->hidden, KV = d->kv_dim, hd = d->head;
  const int group = d->heads / d->kv_heads;
  const float inv_sqrt = 1.0f / sqrtf((float)hd);
  const float *cs = s->rope_cos + (size_t)pos * (hd / 2), *sn = s->rope_sin + (size_t)pos * (hd / 2);
  memcpy(s->x, w->emb + (size_t)token * D, D * sizeof(float));

  for (int l = 0; l < d->layers; l++) {
    float *kc = s->kcache + (size_t)l * d->seq * KV, *vc = s->vcache + (size_t)l * d->seq * KV;
    float *k = kc + (size_t)pos * KV, *v = vc + (size_t)pos * KV;

    rmsnorm(s->xn, s->x, w->rms_att + (size_t)l * D, D);
    matvec(s->q, w->wq + (size_t)l * D * D, s->xn, D, D);
    matvec(k, w->wk + (size_t)l * KV * D, s->xn, KV, D);
    matvec(v, w->wv + (size_t)l * KV * D, s->xn, KV, D);
    rope(s->q, d->heads, hd, cs, sn);
    rope(k, d->kv_heads, hd, cs, sn);

    for (int h = 0; h < d->heads; h++) {
      const float *q = s->q + h * hd;
      const int kvh = h / group;
      float max = -INFINITY;
      for (int t = 0; t <= pos; t++) {
        const float *kt = kc + (size_t)t * KV + kvh * hd;
        float dot = 0.0f;
        for (int i = 0; i < hd; i++) dot += q[i] * kt[i];
        s->scores[t] = dot * inv_sqrt;
        if (s->scores[t] > max) max = s->scores[t];
      }
      float sum = 0.0f;
      for (int t = 0; t <= pos; t++) {
        s->scores[t] = expf(s->scores[t] - max);
        sum += s->scores[t];
      }
      float *o = s->att_out + h * hd;
      for (int i = 0; i < hd; i++) o[i] = 0.0f;
      for (int t = 0; t <= pos; t++) {
        const float *vt = vc + (size_t)t * KV + kvh * hd;
        const float p = s->scores[t] / sum;
        for (int i = 0; i < hd; i++) o[i] += p * vt[i];
      }
    }
    matvec(s->tmp, w->wo + (size_t)l * D * D, s->att_out, D, D);
    for (int i = 0; i < D; i++) s->x[i] += s->tmp[i];

    rmsnorm(s->xn, s->x, w->rms_ffn + (size_t)l * D, D);
    matvec(s->gate, w->w1 + (size_t)l * H * D, s->xn, H, D);
    matvec(s->up, w->w3 + (size_t)l * H * D, s->xn, H, D);
    for (int i = 0; i < H; i++) {
      const float g = s->gate[i];
      s->gate[i] = g / (1.0f + expf(-g)) * s->up[i]; /* SwiGLU: silu(w1 x) * (w3 x) */
    }
    matvec(s->tmp, w->w2 + (size_t)l * D * H, s->gate, D, H);
    for (int i = 0; i < D; i++) s->x[i] += s->tmp[i];
  }
  rmsnorm(s->xn, s->x, w->rms_final, D);
  matvec(s->logits, w->cls, s->xn, d->vocab, D);
}

/* Index of the first maximum (ties: the lowest index). */
static int argmax(const float *x, int n) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: llama_c <checkpoint.bin> <steps> <prompt ids, comma-separated>\n");
    return 2;
  }
  Dims d;
  Weights w;
  float *data = load(argv[1], &d, &w);
  int steps = atoi(argv[2]);
  if (steps < 1 || steps > d.seq) die("steps must be in 1..seq_len");

  int *prompt = xcalloc(strlen(argv[3]) + 1, sizeof(int));
  int n_prompt = 0;
  for (char *tok = strtok(argv[3], ","); tok; tok = strtok(NULL, ",")) {
    int id = atoi(tok);
    if (id < 0 || id >= d.vocab) die("prompt id out of range");
    prompt[n_prompt++] = id;
  }
  if (n_prompt < 1 || n_prompt > steps) die("need 1..steps prompt ids");

  State s;
  init_state(&d, &s);
  int *out = xcalloc(steps + 1, sizeof(int));
  int n_out = 0;

  for (int pos = 0; pos < n_prompt; pos++) forward(&d, &w, &s, prompt[pos], pos);
  double t0 = now_ms();
  int token = argmax(s.logits, d.vocab);
  out[n_out++] = token;
  for (int pos = n_prompt; pos < steps; pos++) {
    forward(&d, &w, &s, token, pos);
    token = argmax(s.logits, d.vocab);
    out[n_out++] = token;
  }
  double ms = now_ms() - t0;

  for (int i = 0; i < n_out; i++) printf(i ? ",%d" : "%d", out[i]);
  printf("\n");
  int n_decode = steps - n_prompt;
  fprintf(stderr, "decode %d tokens %.3f ms %.3f tok/s\n", n_decode, ms, ms > 0 ? n_decode * 1e3 / ms : 0.0);
  free(data);
  return 0;
}
