package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/warren/reconciler/e2e/imagebuild"
)

func main() {
	pkg := flag.String("pkg", "./e2e/testapp", "Go package to build into the image")
	ref := flag.String("ref", imagebuild.DefaultRef, "image reference to tag the archive with")
	out := flag.String("o", "build/images/testapp.tar", "archive to write")
	flag.Parse()
	dir, err := os.MkdirTemp("", "mkimage")
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	if err := imagebuild.Build(context.Background(), *pkg, *ref, *out, dir); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s)\n", *out, *ref)
}
