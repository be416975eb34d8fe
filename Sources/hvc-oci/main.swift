import OCICommandLine

HVCOCI.main()
