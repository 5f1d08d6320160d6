/* The vector part of `tostore demo`: a table with a vector field and an ngh
 * index, nearest-neighbour search with and without a filter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/tostore.h>
#include "demo.h"

#define DIMS 16

static const char *SCHEMA =
    "{\"name\": \"notes\", \"fields\": ["
    "   {\"name\": \"title\", \"type\": \"text\", \"unique\": true, \"nullable\": false},"
    "   {\"name\": \"topic\", \"type\": \"text\"},"
    "   {\"name\": \"emb\", \"type\": \"vector\", \"vectorConfig\": {\"dimensions\": 16}}],"
    " \"indexes\": [{\"type\": \"ngh\", \"fields\": [\"emb\"],"
    "   \"vectorConfig\": {\"distanceMetric\": \"cosine\"}}, {\"fields\": [\"topic\"]}]}";

/* A toy embedding: words hashed into DIMS buckets (a real app would call
 * its model here). */
static void embed(const char *text, float *v)
{
    memset(v, 0, DIMS * sizeof *v);
    unsigned h = 2166136261u;
    for (const char *p = text;; p++) {
        if (*p && *p != ' ') { h = (h ^ (unsigned char)(*p | 32)) * 16777619u; continue; }
        v[h % DIMS] += 1.0f;
        v[(h >> 8) % DIMS] += 0.5f;
        h = 2166136261u;
        if (!*p) break;
    }
}

static void show(ts_db *db, const char *what, ts_query *q, const char *text)
{
    float v[DIMS];
    embed(text, v);
    ts_result *r = NULL;
    int rc = ts_vector_search(q, "emb", v, DIMS, 3, &r);
    printf("  %s \"%s\":\n", what, text);
    if (rc) printf("    %s: %s\n", ts_strerror(rc), ts_errmsg(db));
    for (size_t i = 0; r && i < ts_result_count(r); i++) {
        const json_t *row = ts_result_row(r, i);
        printf("    %.3f  %-8s %s\n", json_real_value(json_object_get(row, "_score")),
               json_string_value(json_object_get(row, "topic")),
               json_string_value(json_object_get(row, "title")));
    }
    ts_result_free(r);
    ts_query_free(q);
}

void demo_vectors(ts_db *db)
{
    static const char *const notes[][2] = {
        { "storage", "write ahead log makes commits durable after a crash" },
        { "storage", "page cache keeps hot pages in memory" },
        { "storage", "checkpoint copies log pages into the database file" },
        { "search", "nearest neighbour search over vectors with a graph index" },
        { "search", "filters narrow a vector search to matching rows" },
        { "cooking", "slow cooked beans with garlic and thyme" },
        { "cooking", "bread dough rests overnight in a cold kitchen" },
    };
    printf("\nvector search (ngh index, cosine):\n");
    json_error_t je;
    json_t *schema = json_loads(SCHEMA, 0, &je);
    int rc = ts_create_table(db, schema);
    json_decref(schema);
    if (rc && rc != TS_ERR_TABLE_EXISTS) {
        printf("  create notes -> %s: %s\n", ts_strerror(rc), ts_errmsg(db));
        return;
    }
    for (size_t i = 0; i < sizeof notes / sizeof notes[0]; i++) {
        float v[DIMS];
        embed(notes[i][1], v);
        json_t *rec = json_pack("{s:s, s:s, s:o}", "title", notes[i][1], "topic", notes[i][0], "emb",
                                ts_vector_value(v, DIMS));
        rc = ts_upsert(db, "notes", rec, NULL);   /* by the unique title: reruns add nothing */
        json_decref(rec);
        if (rc) { printf("  upsert a note -> %s: %s\n", ts_strerror(rc), ts_errmsg(db)); return; }
    }
    show(db, "nearest to", ts_query_new(db, "notes"), "log pages after a crash");
    json_t *topic = json_string("search");
    show(db, "with topic = search, nearest to", ts_where(ts_query_new(db, "notes"), "topic", "=", topic),
         "log pages after a crash");
    json_decref(topic);
}
