/* Ping-pong between ranks 0 and 1, in the style of the OSU micro-benchmarks.
 *
 *   pingpong                 every rank prints "rank R of N", then ranks 0 and 1 exchange
 *                            a 1-byte and a 4 MiB message and check their contents
 *   pingpong lat SIZE ITERS  one-way latency of SIZE-byte messages (osu_latency): "lat SIZE USEC"
 *   pingpong bw SIZE ITERS   bandwidth with 64 messages in flight (osu_bw): "bw SIZE MB/S"
 *
 * The 4 MiB message goes through the shared-memory transport's single-copy path (CMA) where
 * one is in use, so a check that passes has exercised it.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 64
#define WARMUP 100

static int rank, size;

static void check(const unsigned char *buf, size_t n, unsigned char seed) {
    for (size_t i = 0; i < n; i++)
        if (buf[i] != (unsigned char)(seed + i * 7)) {
            fprintf(stderr, "rank %d: byte %zu of %zu is wrong\n", rank, i, n);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
}

static void exchange(size_t n, unsigned char seed) {
    unsigned char *buf = malloc(n);
    if (rank == 0) {
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)(seed + i * 7);
        MPI_Send(buf, (int)n, MPI_BYTE, 1, 1, MPI_COMM_WORLD);
        memset(buf, 0, n);
        MPI_Recv(buf, (int)n, MPI_BYTE, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        check(buf, n, seed);
    } else if (rank == 1) {
        MPI_Recv(buf, (int)n, MPI_BYTE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        check(buf, n, seed);
        MPI_Send(buf, (int)n, MPI_BYTE, 0, 1, MPI_COMM_WORLD);
    }
    free(buf);
}

static double latency(size_t n, int iters) {
    char *buf = calloc(1, n ? n : 1);
    double t0 = 0;
    for (int i = 0; i < iters + WARMUP; i++) {
        if (i == WARMUP) {
            MPI_Barrier(MPI_COMM_WORLD);
            t0 = MPI_Wtime();
        }
        if (rank == 0) {
            MPI_Send(buf, (int)n, MPI_CHAR, 1, 1, MPI_COMM_WORLD);
            MPI_Recv(buf, (int)n, MPI_CHAR, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(buf, (int)n, MPI_CHAR, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, (int)n, MPI_CHAR, 0, 1, MPI_COMM_WORLD);
        }
    }
    double us = (MPI_Wtime() - t0) * 1e6 / (2.0 * iters);
    free(buf);
    return us;
}

static double bandwidth(size_t n, int iters) {
    char *buf = calloc(1, n);
    char ack;
    MPI_Request req[WINDOW];
    double t0 = 0;
    for (int i = 0; i < iters + WARMUP / 10; i++) {
        if (i == WARMUP / 10) {
            MPI_Barrier(MPI_COMM_WORLD);
            t0 = MPI_Wtime();
        }
        if (rank == 0) {
            for (int w = 0; w < WINDOW; w++)
                MPI_Isend(buf, (int)n, MPI_CHAR, 1, 2, MPI_COMM_WORLD, &req[w]);
            MPI_Waitall(WINDOW, req, MPI_STATUSES_IGNORE);
            MPI_Recv(&ack, 1, MPI_CHAR, 1, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            for (int w = 0; w < WINDOW; w++)
                MPI_Irecv(buf, (int)n, MPI_CHAR, 0, 2, MPI_COMM_WORLD, &req[w]);
            MPI_Waitall(WINDOW, req, MPI_STATUSES_IGNORE);
            MPI_Send(&ack, 1, MPI_CHAR, 0, 3, MPI_COMM_WORLD);
        }
    }
    double secs = MPI_Wtime() - t0;
    free(buf);
    return (double)n * WINDOW * iters / secs / 1e6;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc == 1) {
        printf("rank %d of %d\n", rank, size);
        fflush(stdout);
        if (size >= 2) {
            exchange(1, 3);
            exchange(4 << 20, 5);
            if (rank == 0)
                printf("exchange ok\n");
        }
    } else if (argc == 4 && size >= 2) {
        size_t n = strtoul(argv[2], NULL, 10);
        int iters = atoi(argv[3]);
        if (strcmp(argv[1], "lat") == 0) {
            double us = latency(n, iters);
            if (rank == 0)
                printf("lat %zu %.3f\n", n, us);
        } else {
            double mbs = bandwidth(n, iters);
            if (rank == 0)
                printf("bw %zu %.1f\n", n, mbs);
        }
    } else if (rank == 0) {
        fprintf(stderr, "usage: pingpong [lat|bw SIZE ITERS] (2 ranks or more)\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    MPI_Finalize();
    return 0;
}
