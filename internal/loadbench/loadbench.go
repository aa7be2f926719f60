// Package loadbench drives HTTP workloads at a fixed concurrency for a fixed
// time and reports throughput, latency percentiles, errors, process CPU per
// request and resident memory. It knows nothing about OAuth: a Workload is a
// name and a function that makes one request; the caller wires the server.
//
// Numbers from a shared, noisy machine are only comparable within one run,
// so every result is also given as a ratio to a reference workload measured
// in the same run (the "ceiling": a bare net/http handler).
package loadbench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Op makes one request (or one multi-request round trip) and reports whether
// it succeeded. It is called from one goroutine only: per-worker state lives
// in its closure.
type Op func(ctx context.Context) error

// Workload is one thing to measure.
type Workload struct {
	// Name identifies the workload in tables, JSON and --workloads.
	Name string
	// Note is printed with the result (what exactly is measured).
	Note string
	// Requests is how many HTTP requests one Op makes (default 1); the
	// throughput is reported per Op, and this only annotates the table.
	Requests int
	// NewWorker returns the Op of virtual user id (0 ≤ id < concurrency).
	// It runs before timing starts, so per-user setup (a login, a token)
	// is not measured.
	NewWorker func(ctx context.Context, id int) (Op, error)
	// Skip, when not empty, reports the workload as skipped for this reason.
	Skip string
}

// Options fix how a workload is driven.
type Options struct {
	Duration    time.Duration
	Concurrency int
	// Warmup runs before the measured period, to fill connection pools,
	// caches and the JIT-less Go runtime's heap; not recorded.
	Warmup time.Duration
}

// Result is one workload's measurement.
type Result struct {
	Name       string        `json:"name"`
	Note       string        `json:"note,omitempty"`
	Skipped    string        `json:"skipped,omitempty"`
	Requests   int           `json:"requests_per_op"`
	Ops        int64         `json:"ops"`
	Errors     int64         `json:"errors"`
	FirstError string        `json:"first_error,omitempty"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	PerSecond  float64       `json:"ops_per_second"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	CPUPerOp   time.Duration `json:"cpu_per_op_ns"`
	PeakRSS    int64         `json:"peak_rss_bytes"`
	// Ratio is throughput over the ceiling's; CPURatio is the ceiling's
	// CPU per operation over this workload's, which on a saturated machine
	// predicts the throughput ratio and is steadier when other processes
	// compete for the cores. Over several rounds both are medians of the
	// per-round ratios, each against the ceiling of the same round.
	Ratio       float64 `json:"ratio_to_ceiling"`
	CPURatio    float64 `json:"cpu_ratio_to_ceiling"`
	Concurrency int     `json:"concurrency"`
	Rounds      int     `json:"rounds"`
}

// Run drives w with opts and returns its result (Ratio is left zero; see
// SetRatios). A setup failure is an error; failing requests are counted.
func Run(ctx context.Context, w Workload, opts Options) (Result, error) {
	res := Result{Name: w.Name, Note: w.Note, Requests: max(w.Requests, 1), Concurrency: opts.Concurrency}
	if w.Skip != "" {
		res.Skipped = w.Skip
		return res, nil
	}
	if opts.Concurrency < 1 || opts.Duration <= 0 {
		return res, errors.New("loadbench: concurrency and duration must be positive")
	}
	ops := make([]Op, opts.Concurrency)
	for i := range ops {
		op, err := w.NewWorker(ctx, i)
		if err != nil {
			return res, fmt.Errorf("%s: set up virtual user %d: %w", w.Name, i, err)
		}
		ops[i] = op
	}
	if opts.Warmup > 0 {
		drive(ctx, ops, opts.Warmup, false)
	}

	stopRSS := sampleRSS(ctx)
	cpu0 := processCPU()
	start := time.Now()
	workers := drive(ctx, ops, opts.Duration, true)
	res.Elapsed = time.Since(start)
	cpu := processCPU() - cpu0
	res.PeakRSS = stopRSS()

	var lat []time.Duration
	for _, wk := range workers {
		res.Ops += wk.ok + wk.errs
		res.Errors += wk.errs
		if res.FirstError == "" && wk.firstErr != nil {
			res.FirstError = wk.firstErr.Error()
		}
		lat = append(lat, wk.lat...)
	}
	slices.Sort(lat)
	res.P50, res.P99 = percentile(lat, 0.50), percentile(lat, 0.99)
	if res.Elapsed > 0 {
		res.PerSecond = float64(res.Ops-res.Errors) / res.Elapsed.Seconds()
	}
	if res.Ops > 0 && cpu > 0 {
		res.CPUPerOp = cpu / time.Duration(res.Ops)
	}
	return res, nil
}

type worker struct {
	lat      []time.Duration
	ok, errs int64
	firstErr error
}

// drive runs every op in its own goroutine until d has passed.
func drive(ctx context.Context, ops []Op, d time.Duration, record bool) []*worker {
	// In-flight requests finish after the deadline (and are counted, as
	// Elapsed includes them) rather than being cancelled: a cancelled
	// request closes its keep-alive connection, which would then be
	// re-dialled inside the next measurement.
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	var stop atomic.Bool
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	workers := make([]*worker, len(ops))
	var wg sync.WaitGroup
	for i, op := range ops {
		wk := &worker{}
		if record {
			wk.lat = make([]time.Duration, 0, 1<<14)
		}
		workers[i] = wk
		wg.Go(func() {
			for !stop.Load() {
				t0 := time.Now()
				err := op(ctx)
				el := time.Since(t0)
				if err != nil {
					wk.errs++
					if wk.firstErr == nil {
						wk.firstErr = err
					}
					continue
				}
				wk.ok++
				if record {
					wk.lat = append(wk.lat, el)
				}
			}
		})
	}
	wg.Wait()
	return workers
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Combine merges the rounds of one workload, given with the ceiling's
// result of the same rounds (ceiling may be nil). Throughput and CPU per
// operation are totals over all rounds; p50 and p99 are the medians of the
// rounds' percentiles; the ratios are the medians of the per-round ratios.
func Combine(rounds, ceiling []Result) Result {
	if len(rounds) == 0 {
		return Result{}
	}
	out := rounds[0]
	out.Rounds = len(rounds)
	if out.Skipped != "" {
		return out
	}
	out.Ops, out.Errors, out.Elapsed, out.PeakRSS, out.FirstError = 0, 0, 0, 0, ""
	var cpu time.Duration
	var p50, p99, ratio, cpuRatio []float64
	for i, r := range rounds {
		out.Ops += r.Ops
		out.Errors += r.Errors
		out.Elapsed += r.Elapsed
		out.PeakRSS = max(out.PeakRSS, r.PeakRSS)
		if out.FirstError == "" {
			out.FirstError = r.FirstError
		}
		cpu += r.CPUPerOp * time.Duration(r.Ops)
		p50 = append(p50, float64(r.P50))
		p99 = append(p99, float64(r.P99))
		if i < len(ceiling) && ceiling[i].PerSecond > 0 && r.CPUPerOp > 0 {
			ratio = append(ratio, r.PerSecond/ceiling[i].PerSecond)
			cpuRatio = append(cpuRatio, float64(ceiling[i].CPUPerOp)/float64(r.CPUPerOp))
		}
	}
	if out.Elapsed > 0 {
		out.PerSecond = float64(out.Ops-out.Errors) / out.Elapsed.Seconds()
	}
	if out.Ops > 0 {
		out.CPUPerOp = cpu / time.Duration(out.Ops)
	}
	out.P50, out.P99 = time.Duration(median(p50)), time.Duration(median(p99))
	out.Ratio, out.CPURatio = median(ratio), median(cpuRatio)
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// NewClient returns an HTTP client tuned for keep-alive load: enough idle
// connections per host for every virtual user, no compression, no proxy,
// and no redirects followed (workloads look at Location themselves). When
// addr is 127.0.0.1:PORT, connections to localhost:PORT go to addr, so a server can be addressed by name (http://localhost:PORT, as WebAuthn
// needs) without a resolver deciding between IPv4 and IPv6.
func NewClient(concurrency int, addr string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	dial := d.DialContext
	if _, port, err := net.SplitHostPort(addr); err == nil {
		name := "localhost:" + port
		dial = func(ctx context.Context, network, hostport string) (net.Conn, error) {
			if hostport == name {
				return d.DialContext(ctx, network, addr)
			}
			return d.DialContext(ctx, network, hostport)
		}
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         dial,
		MaxIdleConns:        2 * concurrency,
		MaxIdleConnsPerHost: 2 * concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
