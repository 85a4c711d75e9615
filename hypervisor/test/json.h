/* A small JSON reader for the test vectors (test code only: uses libc). */
#ifndef BM_TEST_JSON_H
#define BM_TEST_JSON_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };
struct jv {
	int type;
	double num;
	int b;
	char *str; /* J_STR; also the key when inside an object */
	char *key;
	struct jv *kids;
	size_t n;
};

struct jp {
	const char *s;
	size_t i, len;
	int bad;
};

static void j_ws(struct jp *p) {
	while (p->i < p->len && (p->s[p->i] == ' ' || p->s[p->i] == '\n' || p->s[p->i] == '\r' || p->s[p->i] == '\t')) p->i++;
}

static char *j_string(struct jp *p) {
	if (p->s[p->i] != '"') { p->bad = 1; return 0; }
	p->i++;
	size_t cap = 16, n = 0;
	char *o = malloc(cap);
	while (p->i < p->len && p->s[p->i] != '"') {
		char c = p->s[p->i++];
		if (c == '\\') {
			char e = p->s[p->i++];
			c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e; /* vectors hold no \u escapes */
			if (e == 'u') p->bad = 1;
		}
		if (n + 2 > cap) o = realloc(o, cap *= 2);
		o[n++] = c;
	}
	p->i++;
	o[n] = 0;
	return o;
}

static void j_value(struct jp *p, struct jv *v) {
	memset(v, 0, sizeof *v);
	j_ws(p);
	if (p->i >= p->len) { p->bad = 1; return; }
	char c = p->s[p->i];
	if (c == '{' || c == '[') {
		v->type = c == '{' ? J_OBJ : J_ARR;
		p->i++;
		size_t cap = 4;
		v->kids = malloc(cap * sizeof *v->kids);
		j_ws(p);
		if (p->s[p->i] == (c == '{' ? '}' : ']')) { p->i++; return; }
		for (;;) {
			if (v->n == cap) v->kids = realloc(v->kids, (cap *= 2) * sizeof *v->kids);
			char *key = 0;
			if (c == '{') {
				j_ws(p);
				key = j_string(p);
				j_ws(p);
				if (p->s[p->i++] != ':') p->bad = 1;
			}
			j_value(p, &v->kids[v->n]);
			v->kids[v->n].key = key;
			v->n++;
			j_ws(p);
			if (p->bad || p->i >= p->len) { p->bad = 1; return; }
			char d = p->s[p->i++];
			if (d == ',') continue;
			if (d != (c == '{' ? '}' : ']')) p->bad = 1;
			return;
		}
	}
	if (c == '"') { v->type = J_STR; v->str = j_string(p); return; }
	if (!strncmp(p->s + p->i, "true", 4)) { v->type = J_BOOL; v->b = 1; p->i += 4; return; }
	if (!strncmp(p->s + p->i, "false", 5)) { v->type = J_BOOL; p->i += 5; return; }
	if (!strncmp(p->s + p->i, "null", 4)) { v->type = J_NULL; p->i += 4; return; }
	char *end;
	v->type = J_NUM;
	v->num = strtod(p->s + p->i, &end);
	if (end == p->s + p->i) p->bad = 1;
	p->i = (size_t)(end - p->s);
}

/* Reads and parses a file; exits on failure (a missing vector file is a failed test). */
static struct jv *j_load(const char *path) {
	FILE *f = fopen(path, "rb");
	if (!f) { fprintf(stderr, "%s: cannot open\n", path); exit(1); }
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = malloc((size_t)n + 1);
	if (fread(s, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "%s: short read\n", path); exit(1); }
	fclose(f);
	s[n] = 0;
	struct jp p = {s, 0, (size_t)n, 0};
	struct jv *v = malloc(sizeof *v);
	j_value(&p, v);
	if (p.bad) { fprintf(stderr, "%s: not JSON this reader understands (at byte %zu)\n", path, p.i); exit(1); }
	free(s);
	return v;
}

static struct jv *j_get(const struct jv *o, const char *key) {
	if (!o || o->type != J_OBJ) return 0;
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->kids[i].key, key)) return &o->kids[i];
	return 0;
}

static double j_num(const struct jv *o, const char *key) {
	const struct jv *v = j_get(o, key);
	if (!v || v->type != J_NUM) { fprintf(stderr, "vector: number %s missing\n", key); exit(1); }
	return v->num;
}

static const char *j_str(const struct jv *o, const char *key) {
	const struct jv *v = j_get(o, key);
	if (!v || v->type != J_STR) { fprintf(stderr, "vector: string %s missing\n", key); exit(1); }
	return v->str;
}

/* Hex string → bytes (malloc'd); *n = length. */
static uint8_t *j_hex(const char *h, size_t *n) {
	size_t l = strlen(h) / 2;
	uint8_t *o = malloc(l ? l : 1);
	for (size_t i = 0; i < l; i++) {
		unsigned b;
		sscanf(h + 2 * i, "%2x", &b);
		o[i] = (uint8_t)b;
	}
	*n = l;
	return o;
}
#endif
