package dataset

// RecordHeadersForTest exposes recordHeaders to the external tests.
var RecordHeadersForTest = recordHeaders
