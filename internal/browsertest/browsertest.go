// Package browsertest starts headless Chromium for the browser tests of
// several packages (web, cmd/stepwise), so they find, launch and screenshot
// it the same way. It is imported by tests only.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// RequireAllEnv, set to 1, turns "Chromium is missing" from a skip into a
// failure, so CI cannot pass by silently not running the browser tests.
const RequireAllEnv = "STEPWISE_REQUIRE_ALL"

// ScreenshotsEnv names a directory to save screenshots in; unset, Screenshot
// does nothing.
const ScreenshotsEnv = "STEPWISE_SCREENSHOTS"

// Chromium returns the path of a Chromium binary (STEPWISE_CHROMIUM, or the
// first of the usual names on PATH). When there is none, the test is
// skipped with a one-line reason, or fails if STEPWISE_REQUIRE_ALL=1.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("STEPWISE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(RequireAllEnv) == "1" {
		t.Fatalf("no Chromium on PATH and %s=1", RequireAllEnv)
	}
	t.Skip("browser test skipped: no Chromium on PATH (install chromium or set STEPWISE_CHROMIUM)")
	return ""
}

// New launches a fresh headless Chromium (its own profile in a temporary
// directory, no background traffic) and returns a tab's context, which
// ends after timeout or with the test. extra adds launch flags.
func New(t testing.TB, timeout time.Duration, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if testing.Short() && os.Getenv(RequireAllEnv) != "1" {
		t.Skip("browser test skipped in -short mode")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("mute-audio", true),
		chromedp.WindowSize(1280, 900),
	}
	opts = append(opts, extra...)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// Start the browser now, so a launch failure is reported as such.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	ctx, cancel3 := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancel3)
	return ctx
}

// Screenshot saves the whole page as NAME.png in $STEPWISE_SCREENSHOTS at
// the current viewport and as NAME-phone.png at a phone's width (390×844),
// then restores the desktop viewport (1280×900).
func Screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv(ScreenshotsEnv)
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	save := func(file string) {
		_ = chromedp.Do(ctx, chromedp.Sleep(150*time.Millisecond))  // let layout settle
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100 means PNG; less is JPEG
		if err != nil {
			t.Logf("screenshot %s: %v", file, err)
			return
		}
		if err := os.WriteFile(filepath.Join(dir, file+".png"), png, 0o644); err != nil {
			t.Logf("screenshot %s: %v", file, err)
		}
	}
	save(name)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Logf("phone viewport: %v", err)
		return
	}
	save(name + "-phone")
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Logf("desktop viewport: %v", err)
	}
}
