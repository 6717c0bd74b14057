package metrics

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// WriteText writes fams in the Prometheus text exposition format (version
// 0.0.4), in order.
func WriteText(w io.Writer, fams []Family) error {
	b := bufio.NewWriter(w)
	for _, f := range fams {
		d := f.Desc
		b.WriteString("# HELP " + d.Name + " " + d.Help + "\n# TYPE " + d.Name + " " + d.Kind.String() + "\n")
		for _, s := range f.Samples {
			labels := make([]string, len(s.Labels))
			for i, v := range s.Labels {
				labels[i] = d.Labels[i].Name + `="` + v + `"`
			}
			if d.Kind != Histogram {
				b.WriteString(d.Name + braces(labels) + " " + strconv.FormatFloat(s.Value, 'g', -1, 64) + "\n")
				continue
			}
			for i, n := range s.Buckets {
				le := "+Inf"
				if i < len(d.Buckets) {
					le = strconv.FormatFloat(d.Buckets[i], 'g', -1, 64)
				}
				b.WriteString(d.Name + "_bucket" + braces(append(labels[:len(labels):len(labels)], `le="`+le+`"`)) + " " + strconv.FormatUint(n, 10) + "\n")
			}
			b.WriteString(d.Name + "_sum" + braces(labels) + " " + strconv.FormatFloat(s.Sum, 'g', -1, 64) + "\n")
			b.WriteString(d.Name + "_count" + braces(labels) + " " + strconv.FormatUint(s.Buckets[len(s.Buckets)-1], 10) + "\n")
		}
	}
	return b.Flush()
}

func braces(labels []string) string {
	if len(labels) == 0 {
		return ""
	}
	return "{" + strings.Join(labels, ",") + "}"
}
