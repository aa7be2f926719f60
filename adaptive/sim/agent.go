package sim

import (
	"math/rand/v2"
	"time"
)

// Browsers and their release trains: a device runs the version current at
// (now - its update lag), so versions move forward as they do in the wild.

type family uint8

const (
	famChrome family = iota
	famFirefox
	famEdge
	famSafari
	famSamsung
)

type osKind uint8

const (
	osWindows osKind = iota
	osMac
	osLinux
	osIOS
	osAndroid
)

type device struct {
	kind   string // desktop, mobile, tablet
	os     osKind
	osVer  int // Android major; iOS major; Windows 10/11
	fam    family
	lag    float64 // days behind the release train
	born   time.Time
	used   bool
	weight float64
}

// releaseMajor is the family's current major version at t.
func releaseMajor(f family, t, epoch time.Time) int {
	days := t.Sub(epoch).Hours() / 24
	switch f {
	case famChrome, famEdge:
		return 130 + int(days/28)
	case famFirefox:
		return 131 + int(days/28)
	case famSafari:
		return 18 + int(days/365)
	case famSamsung:
		return 26 + int(days/90)
	}
	return 1
}

func safariMinor(t, epoch time.Time) int {
	days := t.Sub(epoch).Hours() / 24
	return int(days/60) % 6
}

func newDevice(rng *rand.Rand, kind string, born time.Time) *device {
	d := &device{kind: kind, born: born, lag: rng.Float64() * rng.Float64() * 45, weight: 1}
	switch kind {
	case "mobile", "tablet":
		if rng.Float64() < 0.45 {
			d.os, d.fam, d.osVer = osIOS, famSafari, 17+rng.IntN(2)
		} else {
			d.os, d.osVer = osAndroid, 12+rng.IntN(3)
			d.fam = famChrome
			if rng.Float64() < 0.25 {
				d.fam = famSamsung
			}
		}
	default:
		r := rng.Float64()
		switch {
		case r < 0.62:
			d.os = osWindows
			d.osVer = 10
			switch f := rng.Float64(); {
			case f < 0.65:
				d.fam = famChrome
			case f < 0.82:
				d.fam = famEdge
			default:
				d.fam = famFirefox
			}
		case r < 0.93:
			d.os = osMac
			switch f := rng.Float64(); {
			case f < 0.5:
				d.fam = famSafari
			case f < 0.9:
				d.fam = famChrome
			default:
				d.fam = famFirefox
			}
		default:
			d.os = osLinux
			d.fam = famFirefox
			if rng.Float64() < 0.5 {
				d.fam = famChrome
			}
		}
	}
	return d
}

// major returns the device's browser major version at t.
func (d *device) major(t, epoch time.Time) int {
	m := releaseMajor(d.fam, t.Add(-time.Duration(d.lag*24)*time.Hour), epoch)
	return m
}

// render returns the UA string and the dataset's parsed columns.
func render(d *device, major int, t, epoch time.Time) (ua, browser, osName, dev string) {
	m := itoa(major)
	build := itoa(6000 + major*37%900)
	winNT := "Windows NT 10.0; Win64; x64"
	switch d.os {
	case osWindows:
		osName = "Windows 10"
	case osMac:
		osName = "Mac OS X 10.15.7"
	case osLinux:
		osName = "Linux"
	case osIOS:
		osName = "iOS " + m + "." + itoa(safariMinor(t, epoch))
	case osAndroid:
		osName = "Android " + itoa(d.osVer)
	}
	dev = d.kind
	switch d.fam {
	case famChrome:
		browser = "Chrome " + m + ".0." + build
		switch d.os {
		case osWindows:
			ua = "Mozilla/5.0 (" + winNT + ") AppleWebKit/537.36 (KHTML, like Gecko) Chrome/" + m + ".0.0.0 Safari/537.36"
		case osMac:
			ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/" + m + ".0.0.0 Safari/537.36"
		case osLinux:
			ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/" + m + ".0.0.0 Safari/537.36"
		default:
			browser = "Chrome Mobile " + m + ".0." + build
			ua = "Mozilla/5.0 (Linux; Android " + itoa(d.osVer) + "; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/" + m + ".0.0.0 Mobile Safari/537.36"
		}
	case famEdge:
		browser = "Edge " + m + ".0." + build
		ua = "Mozilla/5.0 (" + winNT + ") AppleWebKit/537.36 (KHTML, like Gecko) Chrome/" + m + ".0.0.0 Safari/537.36 Edg/" + m + ".0.0.0"
	case famFirefox:
		browser = "Firefox " + m + ".0"
		plat := winNT
		switch d.os {
		case osMac:
			plat = "Macintosh; Intel Mac OS X 10.15"
		case osLinux:
			plat = "X11; Linux x86_64"
		}
		ua = "Mozilla/5.0 (" + plat + "; rv:" + m + ".0) Gecko/20100101 Firefox/" + m + ".0"
	case famSafari:
		minor := itoa(safariMinor(t, epoch))
		if d.os == osIOS {
			browser = "Mobile Safari " + m + "." + minor
			plat := "iPhone; CPU iPhone OS "
			if d.kind == "tablet" {
				plat = "iPad; CPU OS "
			}
			ua = "Mozilla/5.0 (" + plat + m + "_" + minor + " like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/" + m + "." + minor + " Mobile/15E148 Safari/604.1"
		} else {
			browser = "Safari " + m + "." + minor
			ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/" + m + "." + minor + " Safari/605.1.15"
		}
	case famSamsung:
		browser = "Samsung Internet " + m + ".0"
		ua = "Mozilla/5.0 (Linux; Android " + itoa(d.osVer) + "; SAMSUNG SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/" + m + ".0 Chrome/125.0.0.0 Mobile Safari/537.36"
	}
	return ua, browser, osName, dev
}
