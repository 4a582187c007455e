package packaging

import (
	"slices"
	"strings"
	"testing"
)

func TestClassifyLicense(t *testing.T) {
	bsd2 := "Redistribution and use in source and binary forms, with or without modification, are permitted"
	for name, c := range map[string]struct {
		text string
		want []string
	}{
		"apache":   {"Apache License\n   Version 2.0, January 2004", []string{"Apache-2.0"}},
		"mpl":      {"Mozilla Public License Version 2.0\n====", []string{"MPL-2.0"}},
		"mit":      {"Permission is hereby granted, free of charge, to any person obtaining a copy\nof this software", []string{"MIT"}},
		"zlib":     {"Permission is granted to anyone to use this software for any purpose,\nincluding commercial applications, and to alter it and redistribute it\nfreely", []string{"Zlib"}},
		"bsd2":     {bsd2, []string{"BSD-2-Clause"}},
		"bsd3":     {bsd2 + "\n* Neither the name of Google", []string{"BSD-3-Clause"}},
		"bsd2+isc": {bsd2 + "\n\nAVL Tree:\nPermission to use, copy, modify, and distribute this software for any\npurpose", []string{"ISC", "BSD-2-Clause"}},
		"unknown":  {"All rights reserved. Do not copy.", nil},
	} {
		if got := classifyLicense(c.text); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
}

// The copyright file names a common licence without its text (and once as
// a standalone paragraph), carries other licences' texts inline, and a
// module's NOTICE as a comment.
func TestDebianCopyright_Paragraphs(t *testing.T) {
	linked := []ThirdParty{
		{Path: "std", Version: "go1.26.8", License: "BSD-3-Clause", Copyright: []string{"2009 The Go Authors."},
			Files: []NamedText{{"LICENSE", "Copyright 2009 The Go Authors.\n\nRedistribution and use..."}, {"PATENTS", "Additional IP Rights Grant"}}},
		{Path: "example.com/a", Version: "v1.0.0", License: "Apache-2.0",
			Files: []NamedText{{"LICENSE", "Apache License\nVersion 2.0"}, {"NOTICE", "a NOTICE\n\nline"}}},
		{Path: "example.com/b", Version: "v2.0.0", License: "BSD-3-Clause and MPL-2.0", Copyright: []string{"2017 B"},
			Files: []NamedText{{"LICENSE.BSD", "BSD TEXT"}, {"LICENSE.MPL-2.0", "MPL TEXT"}, {"LICENSE.docs", "CC TEXT"}}},
	}
	got := DebianCopyright("NOTICE OF DTK", linked)
	for _, w := range []string{
		"Files: *\nCopyright: " + Copyright + "\nLicense: Apache-2.0\n",
		"Files: vendor/std/*\nCopyright: 2009 The Go Authors.\nLicense: BSD-3-Clause\n Copyright 2009",
		"Comment:\n The Go standard library, go1.26.8\n .\n PATENTS:\n .\n Additional IP Rights Grant\n",
		"Files: vendor/example.com/a/*\nCopyright: the authors of example.com/a\nLicense: Apache-2.0\nComment:\n example.com/a v1.0.0\n .\n NOTICE:\n .\n a NOTICE\n .\n line\n",
		"License: BSD-3-Clause and MPL-2.0\n BSD TEXT\n .\n MPL TEXT\nComment: example.com/b v2.0.0\n",
		"\nLicense: Apache-2.0\n On Debian systems",
		" NOTICE OF DTK\n",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("copyright lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "CC TEXT") {
		t.Error("the documentation's licence is in the copyright file's licence text")
	}
	if strings.Count(got, "\nLicense: Apache-2.0\n On Debian") != 1 || strings.Contains(got, "\nLicense: MPL-2.0\n On Debian") {
		t.Errorf("standalone licence paragraphs: one Apache-2.0 (named), no MPL-2.0 (its text is inline):\n%s", got)
	}
}
