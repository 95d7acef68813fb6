import struct,sys
ram=open(sys.argv[1],'rb').read(); out=sys.argv[2]
i=ram.find(b'RSD PTR ',0xe0000)
rsdt=struct.unpack_from('<I',ram,i+16)[0]
def tbl(a):
    sig=ram[a:a+4].decode(); ln=struct.unpack_from('<I',ram,a+4)[0]; return sig,ram[a:a+ln]
sig,r=tbl(rsdt); n=(len(r)-36)//4
seen={}
for k in range(n):
    a=struct.unpack_from('<I',r,36+4*k)[0]; s,t=tbl(a)
    seen.setdefault(s,[]).append(t)
    if s=='FACP':
        d=struct.unpack_from('<I',t,40)[0]; seen.setdefault('DSDT',[]).append(tbl(d)[1])
for s,ts in seen.items():
    for j,t in enumerate(ts):
        name=f"{out}{s.lower()}{j if len(ts)>1 else ''}.aml"; open(name,'wb').write(t); print(name,len(t))
